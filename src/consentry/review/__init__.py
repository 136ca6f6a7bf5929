"""Review: cases, queue, decisions, console users, audit log, webhooks, evidence vault."""
