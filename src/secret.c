/* secret.c: (in progress) */
#include "config.h"
