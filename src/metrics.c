/* metrics.c: (in progress) */
#include "config.h"
