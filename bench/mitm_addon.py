# bench/mitm_addon.py: what a user reaches for today: mitmproxy overwriting the credential
# header of every request (scenario 3's reference; run by bench/run with mitmdump -s).
from mitmproxy import http

REAL = "Bearer sk-bench-mitmproxy-reference-0000000000000000000000000000"


class Overwrite:
	def request(self, flow: http.HTTPFlow) -> None:
		if "authorization" in flow.request.headers:
			flow.request.headers["authorization"] = REAL


addons = [Overwrite()]
