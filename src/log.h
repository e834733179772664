/* log.h: logging to stderr; the macros add the function name. Never log a token or a secret. */
#ifndef CB_LOG_H
#define CB_LOG_H

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the program name printed on each line and the most verbose level shown. */
void log_init(const char *progname, int level);
/* Returns the current level. */
int log_level(void);

void log_emit(int level, const char *func, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void log_fatal(const char *func, int with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/*
 * The per-request line, at info level: exactly what
 * log_info("peer=%s identity=%s route=\"%s\" status=%u grant_id=%s latency_us=%lld", ...)
 * writes, formatted without printf (every request writes one). Strings are bounded:
 * peer 64, identity 256, route 128, grant_id 64 bytes.
 */
void log_request(const char *func, const char *peer, const char *identity, const char *route,
    unsigned int status, const char *grant_id, long long latency_us);

#define log_warn(...)	log_emit(LOG_LVL_WARN, __func__, 1, __VA_ARGS__)	/* + strerror(errno) */
#define log_warnx(...)	log_emit(LOG_LVL_WARN, __func__, 0, __VA_ARGS__)
#define log_info(...)	log_emit(LOG_LVL_INFO, __func__, 0, __VA_ARGS__)
#define log_debug(...)	log_emit(LOG_LVL_DEBUG, __func__, 0, __VA_ARGS__)
#define fatal(...)	log_fatal(__func__, 1, __VA_ARGS__)
#define fatalx(...)	log_fatal(__func__, 0, __VA_ARGS__)

#endif
