/* client/proxy.c: (in progress) */
#include "config.h"
int main(void);
int
main(void)
{
	return 1;
}
