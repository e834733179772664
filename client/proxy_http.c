/* proxy_http.c: (in progress) */
#include "config.h"
