"""The webhook gateway: vendors' webhooks (Pipedrive, Zendesk, Stripe), CloudEvents and the native
contract over HTTP, mapped to contract events and published to the source topics."""
