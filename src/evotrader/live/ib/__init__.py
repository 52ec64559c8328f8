"""Interactive Brokers (TWS / IB Gateway through ib_async): ``IBKRBroker`` and its parts.

``config`` says where TWS listens (arguments, then ``IBKR_*`` variables), ``connection`` owns
the socket and turns IB's failures into the broker errors, ``bars`` serves closed bars,
``orders`` places and tracks orders and reads fills, positions and the account, and
``broker`` composes them behind the ``Broker`` interface.
"""
