/* json.c: (in progress) */
#include "config.h"
