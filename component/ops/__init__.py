"""What an operator runs Courier with: metrics and status over HTTP (:mod:`.http`),
log level and signals (:mod:`.service`), the admins' view of users' queues (:mod:`.admin`)."""
