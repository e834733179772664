/* priv.c: (in progress) */
#include "config.h"
