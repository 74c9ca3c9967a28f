"""The IMAP mailbox watcher, one module per layer.

- `protocol`: aioimaplib's protocol subclassed to fix two of its bugs (and made read-only friendly);
- `parse`: pure parsing of IMAP responses and formatting of command arguments;
- `session`: one logged-in connection (connect, login, EXAMINE, SEARCH, FETCH, IDLE);
- `watcher`: `ImapWatcher`, the IDLE/polling loop with its cursor and backoff;
- `lookup`: `find_by_message_id`, the sender's crash recovery.
"""
