/* crypto.c: (in progress) */
#include "config.h"
