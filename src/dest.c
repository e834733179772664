/* dest.c: (in progress) */
#include "config.h"
