/* api.c: (in progress) */
#include "config.h"
