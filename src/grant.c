/* grant.c: (in progress) */
#include "config.h"
