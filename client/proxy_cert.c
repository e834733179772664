/* proxy_cert.c: (in progress) */
#include "config.h"
