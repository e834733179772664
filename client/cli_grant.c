/* cli_grant.c: (in progress) */
#include "config.h"
