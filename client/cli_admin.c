/* cli_admin.c: (in progress) */
#include "config.h"
