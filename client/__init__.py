"""The site client: ClientApp, local training, site daemon launcher."""
