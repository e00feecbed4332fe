-- POST a ~1 KB two-message chat request (the overhead bench's request).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- The demo mock checks the upstream key; the proxy ignores a client key unless client keys are set.
wrk.headers["Authorization"] = "Bearer demo-key"
wrk.body = '{"model":"hunyuan-turbos-latest","messages":[{"role":"system","content":"' ..
  string.rep("You are a helpful assistant. ", 12) ..
  '"},{"role":"user","content":"' ..
  string.rep("Summarise the attached meeting notes in three bullet points, please. ", 8) ..
  '"}],"stream":false,"temperature":0.7}'
