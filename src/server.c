/* server.c: (in progress) */
#include "config.h"
