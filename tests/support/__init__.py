"""Test support: local stand-ins for services that cannot run here (IB's TWS API), and
small helpers the test folders share."""
