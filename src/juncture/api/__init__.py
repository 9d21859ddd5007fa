"""HTTP adapters: the AuthZEN access API, the native session API, the admin API."""
