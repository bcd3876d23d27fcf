package payments

import (
	"sort"
	"time"
)

// Amounts are held in cents and shown in dollars, as WePay shows them.

type merchant struct {
	userID      int64
	first, last string
	email       string
	token       string
	revoked     bool
	created     time.Time
}

type reserveRelease struct {
	at    time.Time
	cents int64
}

type account struct {
	id, owner       int64
	name, desc, ref string
	state           string
	created         time.Time
	balance         int64
	incomingPending int64
	outgoingPending int64
	reserved        int64
	reserveSchedule []reserveRelease
	bankName        string
}

type checkout struct {
	id, accountID   int64
	desc, kind      string
	state           string
	cents, feeCents int64
	feePayer        string
	created         time.Time
	refundedCents   int64
	refundReason    string
	payerEmail      string
	payerName       string
	creditCardID    int64
	preapprovalID   int64
	ref             string
}

type withdrawal struct {
	id, accountID int64
	state         string
	cents         int64
	note          string
	kind          string
	created       time.Time
	captured      time.Time // zero while not captured
}

type creditCard struct {
	id       int64
	name     string // "Visa xxxxxx4018"
	state    string
	userName string
	email    string
	lastFour string
	bin      string
	expMonth int
	expYear  int
	created  time.Time
}

type preapproval struct {
	id, accountID  int64
	desc           string
	cents          int64
	period         string
	state          string
	payerName      string
	payerEmail     string
	feePayer       string
	created        time.Time
	start          time.Time
	lastCheckout   int64
	lastCheckoutAt time.Time
}

type state struct {
	merchants    map[int64]*merchant
	accounts     map[int64]*account
	checkouts    map[int64]*checkout
	withdrawals  map[int64]*withdrawal
	cards        map[int64]*creditCard
	preapprovals map[int64]*preapproval
}

// seed builds the demo data dated relative to now.
func seed(now time.Time, token func(int64) string) *state {
	now = now.UTC().Truncate(time.Second)
	ago := func(days int) time.Time { return now.Add(-time.Duration(days) * 24 * time.Hour) }
	st := &state{
		merchants:    map[int64]*merchant{},
		accounts:     map[int64]*account{},
		checkouts:    map[int64]*checkout{},
		withdrawals:  map[int64]*withdrawal{},
		cards:        map[int64]*creditCard{},
		preapprovals: map[int64]*preapproval{},
	}
	for _, m := range []*merchant{
		{userID: DemoUserAda, first: "Ada", last: "Lovelace", email: "ada@example.com", created: ago(400)},
		{userID: DemoUserGrace, first: "Grace", last: "Hopper", email: "grace@example.com", created: ago(300)},
	} {
		m.token = token(m.userID)
		st.merchants[m.userID] = m
	}
	for _, a := range []*account{
		{id: DemoAccountPottery, owner: DemoUserAda, name: "Ada's Pottery", desc: "Hand-made pottery", ref: "pottery-1", state: "active", created: ago(380),
			balance: 39050, incomingPending: 63530, outgoingPending: 12000, reserved: 5000, bankName: "Wells Fargo XXXXX3102",
			reserveSchedule: []reserveRelease{{ago(-7), 2500}, {ago(-14), 2500}}},
		{id: DemoAccountWorkshop, owner: DemoUserAda, name: "Ada's Workshop", desc: "Pottery classes", ref: "workshop-1", state: "action_required", created: ago(120),
			balance: 6000, bankName: "Wells Fargo XXXXX3102"},
		{id: DemoAccountBooks, owner: DemoUserGrace, name: "Hopper Books", desc: "Second-hand books", ref: "books-1", state: "active", created: ago(290),
			balance: 9900, reserved: 0, bankName: "Chase XXXXX7781"},
	} {
		st.accounts[a.id] = a
	}
	for _, c := range []*checkout{
		{id: DemoCheckoutRecent, accountID: DemoAccountPottery, desc: "Blue vase", kind: "goods", state: "captured", cents: 4500, feeCents: 161, feePayer: "payee", created: ago(3),
			payerEmail: DemoPayerEmail, payerName: "Sam Payer", creditCardID: DemoCreditCard, ref: "order-1001"},
		{id: DemoCheckoutLarge, accountID: DemoAccountPottery, desc: "Dinner set", kind: "goods", state: "captured", cents: 12000, feeCents: 378, feePayer: "payer", created: ago(10),
			payerEmail: DemoPayerOtherEmail, payerName: "Lee Payer", creditCardID: DemoCreditCardOther, ref: "order-1002"},
		{id: DemoCheckoutRefunded, accountID: DemoAccountPottery, desc: "Mug", kind: "goods", state: "refunded", cents: 3000, feeCents: 117, feePayer: "payee", created: ago(20),
			refundedCents: 3000, refundReason: "Arrived broken", payerEmail: DemoPayerEmail, payerName: "Sam Payer", creditCardID: DemoCreditCard, ref: "order-1003"},
		{id: DemoCheckoutOld, accountID: DemoAccountPottery, desc: "Teapot", kind: "goods", state: "captured", cents: 8000, feeCents: 262, feePayer: "payee", created: ago(75),
			payerEmail: DemoPayerEmail, payerName: "Sam Payer", creditCardID: DemoCreditCard, ref: "order-0990"},
		{id: DemoCheckoutAuthorized, accountID: DemoAccountPottery, desc: "Bowl", kind: "goods", state: "authorized", cents: 1550, feeCents: 75, feePayer: "payee", created: ago(1),
			payerEmail: DemoPayerOtherEmail, payerName: "Lee Payer", creditCardID: DemoCreditCardOther, ref: "order-1004"},
		{id: DemoCheckoutRecurring, accountID: DemoAccountPottery, desc: "Pottery club (monthly)", kind: "service", state: "captured", cents: 2500, feeCents: 103, feePayer: "payee", created: ago(5),
			payerEmail: DemoPayerEmail, payerName: "Sam Payer", preapprovalID: DemoPreapproval, ref: "club-sam"},
		{id: DemoCheckoutWorkshop, accountID: DemoAccountWorkshop, desc: "Wheel class", kind: "service", state: "captured", cents: 6000, feeCents: 204, feePayer: "payee", created: ago(2),
			payerEmail: DemoPayerOtherEmail, payerName: "Lee Payer", creditCardID: DemoCreditCardOther, ref: "class-17"},
		{id: DemoCheckoutGrace, accountID: DemoAccountBooks, desc: "First editions", kind: "goods", state: "captured", cents: 9900, feeCents: 317, feePayer: "payee", created: ago(4),
			payerEmail: DemoPayerEmail, payerName: "Sam Payer", creditCardID: DemoCreditCard, ref: "books-77"},
	} {
		st.checkouts[c.id] = c
	}
	for _, w := range []*withdrawal{
		{id: 8001, accountID: DemoAccountPottery, state: "captured", cents: 30000, note: "Weekly payout", kind: "ach", created: ago(7), captured: ago(6)},
		{id: 8002, accountID: DemoAccountPottery, state: "started", cents: 12000, note: "Weekly payout", kind: "ach", created: ago(1)},
		{id: 8003, accountID: DemoAccountWorkshop, state: "captured", cents: 4000, note: "Payout", kind: "check", created: ago(30), captured: ago(25)},
		{id: 8101, accountID: DemoAccountBooks, state: "captured", cents: 15000, note: "Payout", kind: "ach", created: ago(9), captured: ago(8)},
	} {
		st.withdrawals[w.id] = w
	}
	for _, c := range []*creditCard{
		{id: DemoCreditCard, name: "Visa xxxxxx4018", state: "authorized", userName: "Sam Payer", email: DemoPayerEmail, lastFour: "4018", bin: "411111", expMonth: 4, expYear: now.Year() + 2, created: ago(90)},
		{id: DemoCreditCardOther, name: "MasterCard xxxxxx5100", state: "authorized", userName: "Lee Payer", email: DemoPayerOtherEmail, lastFour: "5100", bin: "510510", expMonth: 11, expYear: now.Year() + 1, created: ago(60)},
	} {
		st.cards[c.id] = c
	}
	for _, pa := range []*preapproval{
		{id: DemoPreapproval, accountID: DemoAccountPottery, desc: "Pottery club", cents: 2500, period: "monthly", state: "approved", payerName: "Sam Payer", payerEmail: DemoPayerEmail,
			feePayer: "payee", created: ago(35), start: ago(35), lastCheckout: DemoCheckoutRecurring, lastCheckoutAt: ago(5)},
		{id: DemoPreapprovalGrace, accountID: DemoAccountBooks, desc: "Book of the month", cents: 1500, period: "monthly", state: "approved", payerName: "Sam Payer", payerEmail: DemoPayerEmail,
			feePayer: "payee", created: ago(50), start: ago(50)},
	} {
		st.preapprovals[pa.id] = pa
	}
	return st
}

func dollars(cents int64) float64 { return float64(cents) / 100 }

func unix(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (m *merchant) object() map[string]any {
	return map[string]any{
		"user_id":      m.userID,
		"user_name":    m.first + " " + m.last,
		"first_name":   m.first,
		"last_name":    m.last,
		"email":        m.email,
		"state":        "registered",
		"create_time":  m.created.Unix(),
		"callback_uri": nil,
	}
}

func (a *account) object() map[string]any {
	return map[string]any{
		"account_id":    a.id,
		"name":          a.name,
		"state":         a.state,
		"description":   a.desc,
		"reference_id":  a.ref,
		"owner_user_id": a.owner,
		"type":          "personal",
		"create_time":   a.created.Unix(),
		"country":       "US",
		"currencies":    []string{"USD"},
		"balances": []map[string]any{{
			"currency":                "USD",
			"balance":                 dollars(a.balance),
			"incoming_pending_amount": dollars(a.incomingPending),
			"outgoing_pending_amount": dollars(a.outgoingPending),
			"reserved_amount":         dollars(a.reserved),
			"disputed_amount":         0,
			"withdrawal_period":       "daily",
			"withdrawal_next_time":    nil,
			"withdrawal_bank_name":    a.bankName,
		}},
		"statuses": []map[string]any{{
			"currency":                 "USD",
			"incoming_payments_status": "ok",
			"outgoing_payments_status": "ok",
			"account_review_status":    "none",
		}},
		"action_reasons": actionReasons(a.state),
		"gaq_domains":    []string{},
		"theme_object":   nil,
		"callback_uri":   nil,
	}
}

func actionReasons(state string) []string {
	if state == "action_required" {
		return []string{"kyc", "bank_account"}
	}
	return []string{}
}

func (c *checkout) object() map[string]any {
	gross := c.cents
	if c.feePayer == "payer" {
		gross += c.feeCents
	}
	pm := map[string]any{"type": "credit_card", "credit_card": map[string]any{"id": c.creditCardID, "auto_capture": true}}
	if c.preapprovalID != 0 {
		pm = map[string]any{"type": "preapproval", "preapproval": map[string]any{"id": c.preapprovalID}}
	}
	return map[string]any{
		"checkout_id":       c.id,
		"account_id":        c.accountID,
		"type":              c.kind,
		"short_description": c.desc,
		"long_description":  nil,
		"currency":          "USD",
		"amount":            dollars(c.cents),
		"gross":             dollars(gross),
		"state":             c.state,
		"soft_descriptor":   "WPY*Demo",
		"auto_release":      true,
		"create_time":       c.created.Unix(),
		"reference_id":      nullable(c.ref),
		"callback_uri":      nil,
		"delivery_type":     nil,
		"in_review":         false,
		"payment_error":     nil,
		"hosted_checkout":   nil,
		"fee": map[string]any{
			"app_fee":        0,
			"processing_fee": dollars(c.feeCents),
			"fee_payer":      c.feePayer,
		},
		"refund": map[string]any{
			"amount_refunded": dollars(c.refundedCents),
			"refund_reason":   nullable(c.refundReason),
		},
		"chargeback":     map[string]any{"amount_charged_back": 0, "dispute_uri": nil},
		"payment_method": pm,
		"payer": map[string]any{
			"email":        c.payerEmail,
			"name":         c.payerName,
			"home_address": nil,
		},
	}
}

func (w *withdrawal) object() map[string]any {
	return map[string]any{
		"withdrawal_id":       w.id,
		"account_id":          w.accountID,
		"state":               w.state,
		"amount":              dollars(w.cents),
		"currency":            "USD",
		"note":                w.note,
		"type":                w.kind,
		"recipient_confirmed": nil,
		"create_time":         w.created.Unix(),
		"capture_time":        unix(w.captured),
		"callback_uri":        nil,
	}
}

func (c *creditCard) object() map[string]any {
	return map[string]any{
		"credit_card_id":        c.id,
		"credit_card_name":      c.name,
		"state":                 c.state,
		"user_name":             c.userName,
		"email":                 c.email,
		"reference_id":          nil,
		"create_time":           c.created.Unix(),
		"input_source":          "card_keyed",
		"virtual_terminal_mode": "none",
		"expiration_month":      c.expMonth,
		"expiration_year":       c.expYear,
		"last_four":             c.lastFour,
		"bin":                   c.bin,
	}
}

func (pa *preapproval) object() map[string]any {
	return map[string]any{
		"preapproval_id":     pa.id,
		"account_id":         pa.accountID,
		"short_description":  pa.desc,
		"long_description":   nil,
		"currency":           "USD",
		"amount":             dollars(pa.cents),
		"fee_payer":          pa.feePayer,
		"state":              pa.state,
		"app_fee":            0,
		"period":             pa.period,
		"frequency":          1,
		"start_time":         pa.start.Unix(),
		"end_time":           nil,
		"reference_id":       nil,
		"callback_uri":       nil,
		"auto_recur":         true,
		"payer_name":         pa.payerName,
		"payer_email":        pa.payerEmail,
		"create_time":        pa.created.Unix(),
		"last_checkout_id":   nullInt(pa.lastCheckout),
		"last_checkout_time": unix(pa.lastCheckoutAt),
		"mode":               "regular",
	}
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// sortCheckouts orders by creation time, then id, newest first when desc.
func sortCheckouts(cs []*checkout, desc bool) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if !a.created.Equal(b.created) {
			return a.created.After(b.created) == desc
		}
		return (a.id > b.id) == desc
	})
}
