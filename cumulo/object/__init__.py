"""Object storage (Swift's twin): the v1 API, its listings in the cloud's database, and (in
``storage``) the ring of device directories that hold the data."""
