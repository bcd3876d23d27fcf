package config

import (
	"strings"
	"testing"
)

// secret32 is a valid hs256 secret.
const secret32 = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	// Each snippet starts with `local` (line 1) so line numbers count from 2.
	tests := []struct {
		name, yaml string
		want       string
	}{
		// server
		{"plain HTTP on a public address", "server:\n  listen: \":8080\"\n",
			`backlot.yaml:2: server.listen: plain HTTP on non-loopback address ":8080"`},
		{"listen not host:port", "server:\n  listen: \"8080\"\n",
			`backlot.yaml:2: server.listen: want host:port`},
		{"listen bad port", "server:\n  listen: \"127.0.0.1:http\"\n",
			`backlot.yaml:2: server.listen: invalid port "http"`},
		{"public_url relative", "server:\n  listen: 127.0.0.1:1\n  public_url: /x\n",
			`backlot.yaml:3: server.public_url: want an absolute http(s) URL, got "/x"`},
		{"tls half set", "server:\n  listen: \":443\"\n  tls:\n    cert_file: c.pem\n",
			"backlot.yaml:3: server.tls: cert_file and key_file must be set together"},
		{"trusted proxy", "server:\n  listen: 127.0.0.1:1\n  trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n",
			`backlot.yaml:3: server.trusted_proxies[1]: want a CIDR or an IP address, got "10.0.0.0/33"`},
		{"negative body limit", "server:\n  listen: 127.0.0.1:1\n  max_body_bytes: -1\n",
			"backlot.yaml:3: server.max_body_bytes: must not be negative"},
		// store
		{"store scheme", local + "store:\n  url: mysql://db/x\n", "backlot.yaml:3: store.url: want sqlite://<path> or postgres://…"},
		{"sqlite without path", local + "store:\n  url: sqlite://\n", "backlot.yaml:3: store.url: sqlite:// needs a file path"},
		// keys
		{"key without id", local + "keys:\n  - secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
			"backlot.yaml:3: keys[0].id: is required"},
		{"duplicate key id", local + "keys:\n  - {id: a, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\n  - {id: a, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\n",
			`backlot.yaml:4: keys[1].id: duplicate key id "a" (also keys[0])`},
		{"key too short", local + "keys:\n  - id: a\n    secret: c2hvcnQ=\n",
			"backlot.yaml:4: keys[0].secret: want base64 of exactly 32 random bytes"},
		{"key not base64", local + "keys:\n  - {id: a, secret: \"!!!\"}\n",
			"backlot.yaml:3: keys[0].secret: want base64 of exactly 32 random bytes"},
		{"connections need a key", local + "authenticators:\n  u: {type: hs256, secret: " + secret32 + "}\nconnections:\n  c: {authorize_url: \"https://a.example/a\", token_url: \"https://a.example/t\", client_id: x, auth: [u]}\n",
			"backlot.yaml:4: connections: need at least one entry in keys: connection tokens are stored encrypted"},
		// cors
		{"star with credentials", local + "cors:\n  allow_credentials: true\n  allowed_origins:\n    - \"*\"\n",
			`backlot.yaml:5: cors.allowed_origins[0]: "*" is not allowed`},
		{"origin with a path", local + "cors:\n  allowed_origins: [\"https://a.example.com/app\"]\n",
			`backlot.yaml:3: cors.allowed_origins[0]: want an origin such as https://app.example.com`},
		{"origin without scheme", local + "cors:\n  allowed_origins: [a.example.com]\n",
			`cors.allowed_origins[0]: want an origin`},
		{"origin wildcard on a TLD", local + "cors:\n  allowed_origins: [\"https://*.com\"]\n",
			`cors.allowed_origins[0]: wildcard origins need a domain with at least two labels`},
		{"origin wildcard in the middle", local + "cors:\n  allowed_origins: [\"https://a.*.example.com\"]\n",
			`cors.allowed_origins[0]: want an origin`},
		{"origin bad port", local + "cors:\n  allowed_origins: [\"http://localhost:99999\"]\n",
			`cors.allowed_origins[0]: want an origin`},
		{"lower-case method", local + "cors:\n  allowed_methods: [get]\n",
			`backlot.yaml:3: cors.allowed_methods[0]: want an upper-case HTTP method, got "get"`},
		{"bad header", local + "cors:\n  allowed_headers: [\"X Bad\"]\n",
			`cors.allowed_headers[0]: want a header name`},
		// authenticators
		{"type missing", local + "authenticators:\n  users: {secret: x}\n",
			"backlot.yaml:3: authenticators.users.type: is required"},
		{"type unknown", local + "authenticators:\n  users:\n    type: jwt\n",
			`backlot.yaml:4: authenticators.users.type: unknown type "jwt"`},
		{"field of another type", local + "authenticators:\n  users:\n    type: hs256\n    secret: " + secret32 + "\n    jwks_url: https://x.example\n",
			"backlot.yaml:6: authenticators.users.jwks_url: does not apply to type hs256"},
		{"invalid_status", local + "authenticators:\n  users:\n    type: hs256\n    secret: " + secret32 + "\n    invalid_status: 500\n",
			"backlot.yaml:6: authenticators.users.invalid_status: want 401 or 403, got 500"},
		{"hs256 secret missing", local + "authenticators:\n  users:\n    type: hs256\n",
			"backlot.yaml:3: authenticators.users.secret: is required"},
		{"hs256 secret short", local + "authenticators:\n  users:\n    type: hs256\n    secret: short\n",
			"backlot.yaml:5: authenticators.users.secret: must be at least 32 bytes (got 5)"},
		{"jwks url missing", local + "authenticators:\n  ext: {type: jwks}\n",
			"backlot.yaml:3: authenticators.ext.jwks_url: is required"},
		{"jwks url relative", local + "authenticators:\n  ext: {type: jwks, jwks_url: /jwks.json}\n",
			`backlot.yaml:3: authenticators.ext.jwks_url: want an absolute http(s) URL, got "/jwks.json"`},
		{"jwks alg none", local + "authenticators:\n  ext:\n    type: jwks\n    jwks_url: https://x.example/j\n    algorithms:\n      - RS256\n      - none\n",
			`backlot.yaml:8: authenticators.ext.algorithms[1]: "none" is never accepted`},
		{"jwks alg HS256", local + "authenticators:\n  ext: {type: jwks, jwks_url: \"https://x.example/j\", algorithms: [HS256]}\n",
			"authenticators.ext.algorithms[0]: HS256 is a shared-secret algorithm: use an authenticator of type hs256"},
		{"jwks alg unknown", local + "authenticators:\n  ext: {type: jwks, jwks_url: \"https://x.example/j\", algorithms: [RS999]}\n",
			`authenticators.ext.algorithms[0]: unknown algorithm "RS999"`},
		{"stripe_app without secrets", local + "authenticators:\n  s: {type: stripe_app}\n",
			"backlot.yaml:3: authenticators.s.secrets: at least one secret is required"},
		{"stripe_app empty secret", local + "authenticators:\n  s: {type: stripe_app, secrets: [\"\"]}\n",
			"authenticators.s.secrets[0]: must not be empty"},
		{"sharetribe unknown marketplace", local + "authenticators:\n  shoppers:\n    type: sharetribe\n    marketplace: main\n",
			`backlot.yaml:5: authenticators.shoppers.marketplace: no marketplace named "main" (none are configured)`},
		{"sharetribe no marketplace", local + "authenticators:\n  shoppers: {type: sharetribe}\n",
			"authenticators.shoppers.marketplace: is required"},
		{"session login missing", local + "authenticators:\n  staff: {type: session}\n",
			"backlot.yaml:3: authenticators.staff.login: is required"},
		{"session login unknown", local + "authenticators:\n  staff:\n    type: session\n    login: users\n",
			`backlot.yaml:5: authenticators.staff.login: no authenticator named "users" (have staff)`},
		{"session login is a session", local + "authenticators:\n  a: {type: session, login: b}\n  b: {type: session, login: a}\n",
			`backlot.yaml:3: authenticators.a.login: "b" is itself a session authenticator`},
		{"session same_site", local + "authenticators:\n  u: {type: hs256, secret: " + secret32 + "}\n  s: {type: session, login: u, cookie: {same_site: loose}}\n",
			`backlot.yaml:4: authenticators.s.cookie.same_site: want lax, strict or none, got "loose"`},
		{"session same_site none insecure", local + "authenticators:\n  u: {type: hs256, secret: " + secret32 + "}\n  s: {type: session, login: u, cookie: {same_site: none, secure: false}}\n",
			"authenticators.s.cookie.same_site: none requires secure: true"},
		{"api_key without keys", local + "authenticators:\n  ops: {type: api_key}\n",
			"backlot.yaml:3: authenticators.ops.keys: at least one key is required"},
		{"api_key bad hash", local + "authenticators:\n  ops:\n    type: api_key\n    keys:\n      - id: a\n        sha256: abc\n",
			"backlot.yaml:7: authenticators.ops.keys[0].sha256: want the hex SHA-256 of the key (64 hex digits)"},
		{"api_key missing id", local + "authenticators:\n  ops:\n    type: api_key\n    keys:\n      - sha256: " + strings.Repeat("ab", 32) + "\n",
			"backlot.yaml:6: authenticators.ops.keys[0].id: is required"},
		// marketplaces, connections, upstreams, routes
		{"marketplace client_id", local + "marketplaces:\n  main: {type: sharetribe}\n",
			"backlot.yaml:3: marketplaces.main.client_id: is required"},
		{"marketplace type", local + "marketplaces:\n  main: {type: shopify, client_id: c}\n",
			`marketplaces.main.type: unknown type "shopify"`},
		{"marketplace events without integration", local + "marketplaces:\n  main: {client_id: c, events: {types: [user/updated]}}\n",
			"marketplaces.main.events: polling events needs integration credentials"},
		{"marketplace environment", local + "marketplaces:\n  main: {client_id: c, environment: prod}\n",
			`marketplaces.main.environment: unknown environment "prod"`},
		{"marketplace events start", local + "marketplaces:\n  main: {client_id: c, integration: {client_id: i, client_secret: s}, events: {types: [user/updated], start: yesterday}}\n",
			`marketplaces.main.events.start: want now or beginning, got "yesterday"`},
		{"marketplace event type", local + "marketplaces:\n  main: {client_id: c, integration: {client_id: i, client_secret: s}, events: {types: [updated]}}\n",
			`marketplaces.main.events.types[0]: want an event type like listing/updated`},
		{"marketplace events poll too short", local + "marketplaces:\n  main: {client_id: c, integration: {client_id: i, client_secret: s}, events: {types: [user/updated], poll: 10ms}}\n",
			"marketplaces.main.events.poll: at least 100ms"},
		{"marketplace events job without types", local + "marketplaces:\n  main: {client_id: c, integration: {client_id: i, client_secret: s}, events: {job: x}}\n",
			"marketplaces.main.events.types: list the event types to poll"},
		{"marketplace integration half", local + "marketplaces:\n  main: {client_id: c, integration: {client_id: i}}\n",
			"marketplaces.main.integration: client_id and client_secret must be set together"},
		{"marketplace api_url", local + "marketplaces:\n  main: {client_id: c, api_url: \"not a url\"}\n",
			"marketplaces.main.api_url"},
		{"connection token_url", local + "keys: [{id: a, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]\nconnections:\n  acme:\n    authorize_url: https://a.example/a\n    client_id: c\n    auth: [nobody]\n",
			"backlot.yaml:4: connections.acme.token_url: is required"},
		{"connection auth unknown", local + "keys: [{id: a, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]\nconnections:\n  acme:\n    authorize_url: https://a.example/a\n    token_url: https://a.example/t\n    client_id: c\n    auth: [nobody]\n",
			`backlot.yaml:8: connections.acme.auth[0]: no authenticator named "nobody" (none are configured)`},
		{"connection scope_by", local + "keys: [{id: a, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]\nauthenticators: {u: {type: hs256, secret: " + secret32 + "}}\nconnections:\n  acme: {authorize_url: \"https://a.example/a\", token_url: \"https://a.example/t\", client_id: c, auth: [u], scope_by: [email]}\n",
			`connections.acme.scope_by[0]: want tenant or subject, got "email"`},
		{"upstream base_url", local + "upstreams:\n  pay: {base_url: pay.example}\n",
			`backlot.yaml:3: upstreams.pay.base_url: want an absolute http(s) URL, got "pay.example"`},
		{"upstream retries", local + "upstreams:\n  pay: {base_url: \"https://p.example\", retries: -1}\n",
			"upstreams.pay.retries: must not be negative"},
		{"route match", local + "routes:\n  - match: /api/x\n",
			`backlot.yaml:3: routes[0].match: want "METHOD /path"`},
		{"route unknown upstream", local + "routes:\n  - match: GET /x\n    upstream: pay\n",
			`backlot.yaml:4: routes[0].upstream: no upstream named "pay" (none are configured)`},
		{"route unknown auth", local + "upstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - match: GET /x\n    upstream: pay\n    auth: [staff]\n",
			`backlot.yaml:6: routes[0].auth[0]: no authenticator named "staff"`},
		{"route duplicate", local + "upstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, upstream: pay}\n  - {match: GET /x, upstream: pay}\n",
			`backlot.yaml:5: routes[1].match: duplicate route "GET /x" (also routes[0])`},
		{"route unknown connection", local + "upstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, upstream: pay, credential: {connection: acme}}\n",
			`routes[0].credential.connection: no connection named "acme"`},
		{"route without auth", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, upstream: pay, credential: {header: {X-Key: k}}}\n",
			"routes[0].auth: at least one authenticator is required"},
		{"route bad pattern", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: \"GET /x/{a}/{a}\", auth: [u], upstream: pay, credential: {header: {X-Key: k}}}\n",
			"routes[0].match: not a valid net/http pattern"},
		{"route bad wildcard", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: \"GET /x/{a\", auth: [u], upstream: pay, credential: {header: {X-Key: k}}}\n",
			"routes[0].match: not a valid net/http pattern"},
		{"route path unknown wildcard", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: \"GET /x/{id}\", auth: [u], upstream: pay, path: \"/y/{other}\", credential: {header: {X-Key: k}}}\n",
			"routes[0].path: {other} is not a wildcard of match (match has id)"},
		{"route path wildcard inside segment", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: \"GET /x/{id}\", auth: [u], upstream: pay, path: \"/y/a{id}\", credential: {header: {X-Key: k}}}\n",
			"routes[0].path: a wildcard must be a whole segment"},
		{"route path relative", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: \"GET /x\", auth: [u], upstream: pay, path: y, credential: {header: {X-Key: k}}}\n",
			"routes[0].path: must start with /"},
		{"route no credential", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay}\n",
			"routes[0].credential: exactly one of connection, header, basic, body or lookup is required"},
		{"route two credentials", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {header: {X-Key: k}, basic: {user: a, password: b}}}\n",
			"routes[0].credential: exactly one of connection, header, basic, body or lookup may be set (got 2)"},
		{"route header hop-by-hop", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {header: {Connection: k}}}\n",
			"routes[0].credential.header: Connection is a hop-by-hop or framing header"},
		{"route header empty value", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {header: {X-Key: \"\"}}}\n",
			"routes[0].credential.header.X-Key: must not be empty"},
		{"route basic colon", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {basic: {user: \"a:b\", password: c}}}\n",
			"routes[0].credential.basic.user: must not contain a colon"},
		{"route body case twins", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {body: {client_id: a, Client_Id: b}}}\n",
			"differs from"},
		{"route lookup secret", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {lookup: {url: \"https://mw.example/u\"}}}\n",
			"routes[0].credential.lookup.secret: is required"},
		{"route lookup url user info", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {lookup: {url: \"https://a:b@mw.example/u\", secret: s}}}\n",
			"routes[0].credential.lookup.url: must not carry user info"},
		{"route lookup principal attr", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {lookup: {url: \"https://mw.example/u\", secret: s, principal_fields: {user: password}}}}\n",
			`routes[0].credential.lookup.principal_fields.user: want subject, tenant or email, got "password"`},
		{"route lookup field", local + "authenticators: {u: {type: hs256, secret: " + secret32 + "}}\nupstreams: {pay: {base_url: \"https://p.example\"}}\nroutes:\n  - {match: GET /x, auth: [u], upstream: pay, credential: {lookup: {url: \"https://mw.example/u\", secret: s, field: \"data..t\"}}}\n",
			"routes[0].credential.lookup.field: want a field name or a dotted path"},
		{"upstream numeric host", local + "upstreams:\n  pay: {base_url: \"http://0x7f.1/\"}\n",
			"upstreams.pay.base_url: host \"0x7f.1\" is a numeric form"},
		{"upstream scheme", local + "upstreams:\n  pay: {base_url: \"ftp://p.example/\"}\n",
			"upstreams.pay.base_url: want an absolute http(s) URL"},
		{"upstream retries too many", local + "upstreams:\n  pay: {base_url: \"https://p.example\", retries: 11}\n",
			"upstreams.pay.retries: at most 10"},
		// webhooks
		{"webhook path", local + "webhooks:\n  - path: webhooks/a\n    verify: {scheme: github, secrets: [s]}\n    job: j\n",
			`backlot.yaml:3: webhooks[0].path: want a path starting with /, got "webhooks/a"`},
		{"webhook duplicate path", local + "webhooks:\n  - {path: /a, verify: {scheme: github, secrets: [s]}, job: j}\n  - {path: /a, verify: {scheme: github, secrets: [s]}, job: j}\n",
			`backlot.yaml:4: webhooks[1].path: duplicate path "/a" (also webhooks[0])`},
		{"webhook scheme unknown", local + "webhooks:\n  - path: /a\n    verify:\n      scheme: paypal\n    job: j\n",
			`backlot.yaml:5: webhooks[0].verify.scheme: unknown scheme "paypal"`},
		{"webhook scheme missing", local + "webhooks:\n  - {path: /a, job: j}\n",
			"backlot.yaml:3: webhooks[0].verify.scheme: is required"},
		{"webhook secrets missing", local + "webhooks:\n  - path: /a\n    verify: {scheme: stripe}\n    job: j\n",
			"backlot.yaml:4: webhooks[0].verify.secrets: at least one secret is required for scheme stripe"},
		{"webhook standard secret not base64", local + "webhooks:\n  - path: /a\n    verify: {scheme: standard, secrets: [\"whsec_***\"]}\n    job: j\n",
			"backlot.yaml:4: webhooks[0].verify.secrets[0]: want a Standard Webhooks secret"},
		{"webhook none without allow_ips", local + "webhooks:\n  - path: /a\n    verify: {scheme: none}\n    job: j\n",
			"backlot.yaml:3: webhooks[0].allow_ips: scheme none (no signature) requires allow_ips"},
		{"webhook none with secrets", local + "webhooks:\n  - {path: /a, verify: {scheme: none, secrets: [s]}, allow_ips: [10.0.0.1], job: j}\n",
			"webhooks[0].verify.secrets: do not apply to scheme none"},
		{"webhook bad allow_ip", local + "webhooks:\n  - path: /a\n    verify: {scheme: none}\n    allow_ips: [10.0.0.1, nope]\n    job: j\n",
			`backlot.yaml:5: webhooks[0].allow_ips[1]: want a CIDR or an IP address, got "nope"`},
		{"webhook hmac without header", local + "webhooks:\n  - path: /a\n    verify: {scheme: hmac, secrets: [s]}\n    job: j\n",
			"backlot.yaml:4: webhooks[0].verify.header: is required for scheme hmac"},
		{"webhook hmac encoding", local + "webhooks:\n  - {path: /a, verify: {scheme: hmac, secrets: [s], header: X-Sig, encoding: base32}, job: j}\n",
			`webhooks[0].verify.encoding: want hex or base64, got "base32"`},
		{"webhook hmac algorithm", local + "webhooks:\n  - {path: /a, verify: {scheme: hmac, secrets: [s], header: X-Sig, algorithm: md5}, job: j}\n",
			`webhooks[0].verify.algorithm: want sha256 or sha512, got "md5"`},
		{"webhook header on another scheme", local + "webhooks:\n  - path: /a\n    verify:\n      scheme: github\n      secrets: [s]\n      header: X-Sig\n    job: j\n",
			"backlot.yaml:7: webhooks[0].verify.header: applies only to scheme hmac"},
		{"webhook dedupe", local + "webhooks:\n  - path: /a\n    verify: {scheme: github, secrets: [s]}\n    dedupe: sha1\n    job: j\n",
			`backlot.yaml:5: webhooks[0].dedupe: want none, header:<name>, json:<path> or body, got "sha1"`},
		{"webhook dedupe empty header", local + "webhooks:\n  - {path: /a, verify: {scheme: github, secrets: [s]}, dedupe: \"header:\", job: j}\n",
			`webhooks[0].dedupe: want none, header:<name>, json:<path> or body`},
		{"webhook job missing", local + "webhooks:\n  - path: /a\n    verify: {scheme: github, secrets: [s]}\n",
			"backlot.yaml:3: webhooks[0].job: is required (the job kind a Go worker handles), unless forward is set"},
		{"webhook unknown queue", local + "webhooks:\n  - path: /a\n    verify: {scheme: github, secrets: [s]}\n    job: j\n    queue: fast\n",
			`backlot.yaml:6: webhooks[0].queue: no queue named "fast" in jobs.queues: its jobs would never run (have default)`},
		{"forward url", local + "webhooks:\n  - path: /a\n    verify: {scheme: github, secrets: [s]}\n    forward:\n      url: app/hooks\n      secret: whsec_c2VjcmV0\n",
			`backlot.yaml:6: webhooks[0].forward.url: want an absolute http(s) URL, got "app/hooks"`},
		{"forward secret", local + "webhooks:\n  - path: /a\n    verify: {scheme: github, secrets: [s]}\n    forward:\n      url: https://app.example/h\n      secret: plain\n",
			"backlot.yaml:7: webhooks[0].forward.secret: want whsec_ followed by base64"},
		{"forward secret missing", local + "webhooks:\n  - path: /a\n    verify: {scheme: github, secrets: [s]}\n    forward: {url: \"https://app.example/h\"}\n",
			"backlot.yaml:5: webhooks[0].forward.secret: want whsec_ followed by base64"},
		// jobs
		{"backoff", local + "jobs:\n  retry:\n    backoff: linear\n",
			`backlot.yaml:4: jobs.retry.backoff: want exponential, got "linear"`},
		{"no default queue", local + "jobs:\n  queues:\n    bulk: {concurrency: 2}\n",
			`backlot.yaml:3: jobs.queues: a "default" queue is required`},
		{"zero concurrency", local + "jobs:\n  queues:\n    default: {concurrency: 0}\n",
			"backlot.yaml:4: jobs.queues.default.concurrency: must be at least 1"},
		{"base above max", local + "jobs:\n  retry: {base: 2h, max: 1h}\n",
			"backlot.yaml:3: jobs.retry.base: is greater than jobs.retry.max (1h0m0s)"},
		{"negative duration", local + "jobs:\n  timeout: -1s\n", "backlot.yaml:3: jobs.timeout: must not be negative"},
		{"kind queue unknown", local + "jobs:\n  kinds:\n    a.b: {queue: slow}\n",
			`backlot.yaml:4: jobs.kinds.a.b.queue: no queue named "slow"`},
		// schedules
		{"cron invalid", local + "schedules:\n  - name: r\n    cron: \"61 * * * *\"\n    job: j\n",
			`backlot.yaml:4: schedules[0].cron: invalid cron expression "61 * * * *"`},
		{"cron six fields", local + "schedules:\n  - {name: r, cron: \"0 0 9 * * *\", job: j}\n",
			"schedules[0].cron: invalid cron expression"},
		{"schedule duplicate", local + "schedules:\n  - {name: r, cron: \"@daily\", job: j}\n  - {name: r, cron: \"@hourly\", job: j}\n",
			`backlot.yaml:4: schedules[1].name: duplicate schedule "r" (also schedules[0])`},
		{"schedule job missing", local + "schedules:\n  - name: r\n    cron: \"@every 1m\"\n",
			"backlot.yaml:3: schedules[0].job: is required"},
		{"schedule payload", local + "schedules:\n  - {name: r, cron: \"@daily\", job: j, payload: \"{nope\"}\n",
			"schedules[0].payload: want a JSON document"},
		// console
		{"console without auth", local + "console:\n  path: /_/\n",
			"backlot.yaml:2: console.auth: at least one authenticator is required"},
		{"console admin without auth", local + "console:\n  admin: [staff]\n",
			"backlot.yaml:2: console.auth: at least one authenticator is required when console.admin is set"},
		{"console path without trailing slash", local + "authenticators:\n  ops: {type: api_key, keys: [{id: a, sha256: " + strings.Repeat("0f", 32) + "}]}\nconsole: {path: /admin, auth: [ops]}\n",
			`console.path: want a path that starts and ends with /, such as /_/, got "/admin"`},
		{"console path relative", local + "authenticators:\n  ops: {type: api_key, keys: [{id: a, sha256: " + strings.Repeat("0f", 32) + "}]}\nconsole: {path: admin/, auth: [ops]}\n",
			`console.path: want a path that starts and ends with /`},
		{"console unknown admin", local + "authenticators:\n  ops: {type: api_key, keys: [{id: a, sha256: " + strings.Repeat("0f", 32) + "}]}\nconsole: {auth: [ops], admin: [root]}\n",
			`console.admin[0]: no authenticator named "root"`},
		{"audit retention negative", local + "audit:\n  retention: -1h\n", "audit.retention: must"},
		{"console unknown auth", local + "console:\n  path: /_/\n  auth: [staff]\n",
			`backlot.yaml:4: console.auth[0]: no authenticator named "staff"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadBuilt(t, tt.yaml, nil)
			wantErr(t, err, tt.want)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml string }{
		{"origins", local + "cors:\n  allow_credentials: true\n  allowed_origins: [\"https://a.example.com\", \"https://*.example.com\", \"http://localhost:3000\", \"http://127.0.0.1:5173\", \"https://*.example.com:8443\"]\n"},
		{"public address with TLS", "server:\n  listen: \":443\"\n  tls: {cert_file: c.pem, key_file: k.pem}\n"},
		{"public address with override", "server:\n  listen: \"0.0.0.0:80\"\n  http_override: true\n"},
		{"localhost", "server:\n  listen: \"localhost:8080\"\n"},
		{"ipv6 loopback", "server:\n  listen: \"[::1]:8080\"\n"},
		{"postgresql scheme", local + "store:\n  url: postgresql://u:p@h:5432/db?sslmode=disable\n"},
		{"cron forms", local + "schedules:\n  - {name: a, cron: \"*/5 * * * *\", job: j}\n  - {name: b, cron: \"@every 90s\", job: j}\n  - {name: c, cron: \"0 9 * * MON-FRI\", job: j}\n"},
		{"webhook none with allow_ips", local + "webhooks:\n  - {path: /a, verify: {scheme: none}, allow_ips: [10.0.0.0/8, \"::1\"], job: j}\n"},
		{"jwks every allowed algorithm", local + "authenticators:\n  e: {type: jwks, jwks_url: \"https://x.example/j\", algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA]}\n"},
		{"console", local + "authenticators:\n  ops: {type: api_key, keys: [{id: a, sha256: " + strings.Repeat("0f", 32) + "}]}\nconsole: {path: /_/, auth: [ops]}\n"},
		{"marketplace with events", local + "marketplaces:\n  main: {client_id: c, environment: live, integration: {client_id: i, client_secret: s}, integration_api_url: \"http://127.0.0.1:9999\", events: {types: [user/updated, listing/created], poll: 1s, job: mkt.event, start: beginning}}\n"},
		{"queues with default", local + "jobs:\n  queues: {default: {concurrency: 1}, bulk: {concurrency: 2}}\n  kinds: {x: {queue: bulk}}\nwebhooks:\n  - {path: /a, verify: {scheme: shopify, secrets: [s]}, job: j, queue: bulk}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := loadBuilt(t, tt.yaml, nil); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	t.Parallel()
	c := &Config{Server: Server{Listen: "127.0.0.1:0"}}
	if err := c.Prepare(); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if c.Jobs.Queues["default"].Concurrency != 20 || c.Store.URL != "sqlite://backlot.db" {
		t.Errorf("Prepare did not fill defaults: %+v", c)
	}
	c.Authenticators = map[string]Authenticator{"x": {Type: "magic"}}
	err := c.Validate()
	wantErr(t, err, `authenticators.x.type: unknown type "magic"`)
	// No file, no line: the message starts with the path.
	if !strings.HasPrefix(err.Error(), "authenticators.x.type: ") {
		t.Errorf("got %q", err)
	}
	if err := (&Config{Server: Server{Listen: "127.0.0.1:0"}}).Validate(); err != nil {
		t.Errorf("zero config with a loopback listener: %v", err)
	}
}

func TestCheckOrigin(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"https://a.example.com", "http://localhost", "http://localhost:3000", "https://*.example.com",
		"http://[::1]:8080", "http://10.0.0.1"} {
		if msg := checkOrigin(ok); msg != "" {
			t.Errorf("checkOrigin(%q) = %q, want ok", ok, msg)
		}
	}
	for _, bad := range []string{"", "*.example.com", "https://", "https://a.example.com/", "https://a.example.com?x", "ftp://a.example.com",
		"https://user@a.example.com", "https://*", "https://*.com", "https://*.localhost", "https://a_b.example.com", "https://a.example.com:0", "https://**.example.com"} {
		if msg := checkOrigin(bad); msg == "" {
			t.Errorf("checkOrigin(%q) accepted", bad)
		}
	}
}

func TestPathSlug(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/webhooks/vendor": "webhooks-vendor",
		"/hooks/Stripe/v1": "hooks-stripe-v1",
		"/a//b--c/":        "a-b-c",
		"/":                "root",
	} {
		if got := pathSlug(in); got != want {
			t.Errorf("pathSlug(%q) = %q, want %q", in, got, want)
		}
	}
}
