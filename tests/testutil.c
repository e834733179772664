/* testutil.c: helpers shared by the cmocka unit tests (see testutil.h). */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

void
testutil_rm_dir(const char *dir)
{
	struct dirent *de;
	char p[512];
	DIR *d;
	int i;

	if ((d = opendir(dir)) == NULL)
		return;
	/* Flat directory of test files; bounded anyway. */
	for (i = 0; i < 1000 && (de = readdir(d)) != NULL; i++) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(dir);
}
