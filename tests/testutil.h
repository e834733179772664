/* testutil.h: helpers shared by the cmocka unit tests. */
#ifndef CB_TESTUTIL_H
#define CB_TESTUTIL_H

/*
 * Removes a flat directory of test files (at most 1,000 entries) and the directory
 * itself; quiet when it does not exist.
 */
void testutil_rm_dir(const char *dir);

#endif
