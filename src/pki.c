/* pki.c: (in progress) */
#include "config.h"
