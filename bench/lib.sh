# bench/lib.sh: shell functions shared by bench/run and bench/ceiling-run (sourced, never run).
# The caller sets ME (the prefix of its messages) and keeps the PIDs it started in $pids.

freeport() { # a port that was free on 127.0.0.1 a moment ago
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # wait_port PORT [TRIES]: bounded wait (0.1 s x TRIES, default 300)
	local i=0 max=${2:-300}
	while [ $i -lt "$max" ]; do
		if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); s.connect(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null; then
			return 0
		fi
		i=$((i + 1)); sleep 0.1
	done
	echo "$ME: nothing listening on 127.0.0.1:$1" >&2
	return 1
}

stop_started() { # stop every PID in $pids and the nginx of $W, waiting for each
	local p
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	if [ -f "$W/nginx.pid" ]; then kill "$(cat "$W/nginx.pid")" 2>/dev/null || true; fi
}
