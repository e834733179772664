/* commit.c: (in progress) */
#include "config.h"
