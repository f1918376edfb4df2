-- Loaded by tests/federation into its private Prosody instances (written for this harness).
-- Logs one line per authenticated server-to-server stream, which fed_driver.py reads to tell
-- how each direction was authenticated (SASL EXTERNAL or dialback) and whether the stream
-- carries both directions (XEP-0288 bidi: Prosody marks such a session both incoming and
-- outgoing).
--
--   fedtest s2s-authenticated direction=outgoing local=a.example remote=b.example mechanism=EXTERNAL bidi=false

module:hook("s2s-authenticated", function(event)
	local session = event.session;
	local dir = session.direction or "?";
	local local_host, remote_host;
	if dir == "incoming" then
		local_host, remote_host = session.to_host, event.host;
	else
		local_host, remote_host = session.from_host, event.host;
	end
	module:log("info", "fedtest s2s-authenticated direction=%s local=%s remote=%s mechanism=%s bidi=%s",
		dir, tostring(local_host), tostring(remote_host), tostring(event.mechanism or "unknown"),
		tostring(session.incoming and session.outgoing and true or false));
end, 1000);
