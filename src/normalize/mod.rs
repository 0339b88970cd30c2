//! Provider formats (auth0, okta, keycloak) normalised into canonical events.
