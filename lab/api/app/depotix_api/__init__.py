"""The Depotix reference API project: settings, URL conf, WSGI entry point."""
