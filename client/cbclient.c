/* cbclient.c: (in progress) */
#include "config.h"
