"""Alert delivery channels: webhook (Standard Webhooks), email (SMTP), outbox (files)."""
