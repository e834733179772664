/* proxy_conf.c: (in progress) */
#include "config.h"
