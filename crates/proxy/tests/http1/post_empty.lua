-- wrk: every request a POST with an empty body, so `Content-Length: 0`
-- (wrk.format sets the length from the body).
wrk.method = "POST"
wrk.body = ""
