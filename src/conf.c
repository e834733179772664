/* conf.c: (in progress) */
#include "config.h"
