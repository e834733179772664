/* vault.c: (in progress) */
#include "config.h"
