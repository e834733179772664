/* proxy_resolve.c: (in progress) */
#include "config.h"
