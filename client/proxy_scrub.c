/* proxy_scrub.c: (in progress) */
#include "config.h"
