/* store_audit.c: (in progress) */
#include "config.h"
