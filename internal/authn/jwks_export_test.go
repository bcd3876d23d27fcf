package authn

// DropTokenCache empties the verified-token cache, so benchmarks can
// measure the full verification.
func (j *JWKS) DropTokenCache() {
	j.cache.mu.Lock()
	defer j.cache.mu.Unlock()
	clear(j.cache.m)
}

// DropTokenCache empties the verified-token cache.
func (a *HS256) DropTokenCache() {
	a.cache.mu.Lock()
	defer a.cache.mu.Unlock()
	clear(a.cache.m)
}

// ParseJWKSKeys exposes the JWKS parser to the fuzz test: the number of
// usable keys, or an error.
func ParseJWKSKeys(body []byte) (int, error) {
	ks, _, err := parseJWKS(body)
	if err != nil {
		return 0, err
	}
	n := len(ks.noKID)
	for _, v := range ks.byKID {
		for _, k := range v {
			if !keyFits("RS256", k.key) && !keyFits("ES256", k.key) && !keyFits("ES384", k.key) && !keyFits("ES512", k.key) && !keyFits("EdDSA", k.key) {
				panic("parsed a key of no usable type")
			}
			n++
		}
	}
	return n, nil
}
