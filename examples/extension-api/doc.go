// Package extensionapi is the extension-api recipe: backlot.yaml serves
// the API of a marketplace platform extension (JWTs verified against the
// marketplace's JWKS, a CORS allowlist with credentials, a CSP), the
// issuer directory holds a loopback stand-in for the marketplace's token
// service, and the tests run both end to end, in Go and in Chromium.
package extensionapi
