/* store.c: (in progress) */
#include "config.h"
