/* init.c: (in progress) */
#include "config.h"
