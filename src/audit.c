/* audit.c: (in progress) */
#include "config.h"
