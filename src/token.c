/* token.c: (in progress) */
#include "config.h"
