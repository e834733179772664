/* test_proxy_scrub.c: (in progress) fails until written. */
#include "config.h"
int main(void);
int
main(void)
{
	return 1;
}
