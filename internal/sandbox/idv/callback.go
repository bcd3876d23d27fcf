package idv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// outcome is what a decision produces: the callback's verification
// fields, the retrieval API's status, and the browser redirect.
type outcome struct {
	verificationStatus string
	scanStatus         string // PENDING, DONE, FAILED
	transactionStatus  string // SUCCESS or ERROR on the success/error redirect
	errorCode          string // on the error redirect; the simulator's own values, not the vendor's list
	rejectReason       string // JSON, for DENIED_FRAUD and ERROR_NOT_READABLE_ID
}

var outcomes = map[string]outcome{
	DecisionApprove: {verificationStatus: "APPROVED_VERIFIED", scanStatus: "DONE", transactionStatus: "SUCCESS"},
	DecisionFraud: {
		verificationStatus: "DENIED_FRAUD", scanStatus: "DONE", transactionStatus: "SUCCESS",
		rejectReason: `{"rejectReasonCode":"100","rejectReasonDescription":"MANIPULATED_DOCUMENT",` +
			`"rejectReasonDetails":[{"detailsCode":"1001","detailsDescription":"PHOTO"}]}`,
	},
	DecisionUnsupported: {verificationStatus: "DENIED_UNSUPPORTED_ID_TYPE", scanStatus: "DONE", transactionStatus: "SUCCESS"},
	// Unreadable after the last attempt ends on the error URL.
	DecisionDeny: {
		verificationStatus: "ERROR_NOT_READABLE_ID", scanStatus: "DONE", transactionStatus: "ERROR", errorCode: "9210",
		rejectReason: `{"rejectReasonCode":"200","rejectReasonDescription":"NOT_READABLE_DOCUMENT",` +
			`"rejectReasonDetails":[{"detailsCode":"2001","detailsDescription":"BLURRED"}]}`,
	},
	DecisionNoID: {verificationStatus: "NO_ID_UPLOADED", scanStatus: "FAILED", transactionStatus: "ERROR", errorCode: "9100"},
}

// callbackForm builds the form-encoded callback body. The demo document
// is a US passport of JANE DOE.
func (s *IDV) callbackForm(tx *transaction, out outcome, clientIP string) url.Values {
	approved := out.verificationStatus == "APPROVED_VERIFIED"
	check := "N/A"
	scanStatus := "ERROR"
	if approved {
		check = "OK"
		scanStatus = "SUCCESS"
	}
	f := url.Values{
		"callBackType":              {"NETVERIFYID"},
		"jumioIdScanReference":      {tx.ref},
		"verificationStatus":        {out.verificationStatus},
		"idScanStatus":              {scanStatus},
		"idScanSource":              {"WEB_UPLOAD"},
		"idCheckDataPositions":      {check},
		"idCheckDocumentValidation": {check},
		"idCheckHologram":           {check},
		"idCheckMRZcode":            {check},
		"idCheckMicroprint":         {check},
		"idCheckSecurityFeatures":   {check},
		"idCheckSignature":          {check},
		"transactionDate":           {timestamp(tx.created)},
		"callbackDate":              {timestamp(s.opts.Now())},
		"merchantIdScanReference":   {tx.req.CustomerInternalReference},
		"customerId":                {tx.req.UserReference},
	}
	if tx.req.ReportingCriteria != "" {
		f.Set("merchantReportingCriteria", tx.req.ReportingCriteria)
	}
	if clientIP != "" {
		f.Set("clientIp", clientIP)
	}
	if out.verificationStatus != "NO_ID_UPLOADED" {
		f.Set("idType", "PASSPORT")
		f.Set("idCountry", "USA")
		f.Set("firstAttemptDate", timestamp(tx.created))
	}
	if approved {
		f.Set("idFirstName", "JANE")
		f.Set("idLastName", "DOE")
		f.Set("idDob", "1990-01-01")
		f.Set("idExpiry", "2031-12-31")
		f.Set("idNumber", "P1234567")
		f.Set("identityVerification", `{"similarity":"MATCH","validity":true}`)
	}
	if out.rejectReason != "" {
		f.Set("rejectReason", out.rejectReason)
	}
	return f
}

// startDelivery sends the callback in the background, unless the
// simulator is closed.
func (s *IDV) startDelivery(ref, target string, form url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isClosed {
		return
	}
	ctx := s.genCtx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.deliver(ctx, ref, target, form)
	}()
}

// deliver POSTs the callback until the receiver answers 2xx, the attempts
// run out, or ctx (the simulator's life or the current generation) ends.
func (s *IDV) deliver(ctx context.Context, ref, target string, form url.Values) {
	body := form.Encode()
	for n := 1; n <= s.opts.CallbackAttempts; n++ {
		at := s.opts.Now()
		status, err := s.post(ctx, target, body)
		a := Attempt{TransactionReference: ref, URL: target, Attempt: n, At: at, Status: status}
		if err != nil {
			a.Error = err.Error()
		}
		a.Delivered = err == nil && status >= 200 && status < 300
		s.mu.Lock()
		current := s.genCtx == ctx // false once Reset has forgotten this transaction
		if current {
			s.attempts = append(s.attempts, a)
		}
		s.mu.Unlock()
		if !current || a.Delivered || n == s.opts.CallbackAttempts || ctx.Err() != nil {
			return
		}
		t := time.NewTimer(s.opts.CallbackBackoffFunc(n))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

func (s *IDV) post(ctx context.Context, target, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build callback request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Netverify-Callback (backlot simulator)")
	res, err := s.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post callback: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, nil
}
