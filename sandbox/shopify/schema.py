"""The Admin GraphQL schema subset the sandbox serves (SDL), built with graphql-core."""

from __future__ import annotations

from graphql import GraphQLSchema, build_schema

CURRENCIES = ["USD", "EUR", "CAD", "GBP", "JPY", "AUD", "NZD", "CHF", "SEK", "NOK", "DKK", "PLN",
              "CZK", "UAH", "MXN", "BRL", "COP", "INR", "CNY", "HKD", "SGD", "KRW", "ZAR"]
COUNTRIES = ["US", "CA", "DE", "FR", "UA", "JP", "GB", "AU", "NZ", "ES", "IT", "NL", "PL", "MX",
             "BR", "CO", "IN", "CN"]

SDL = """
scalar DateTime
scalar Decimal
scalar UnsignedInt64
scalar URL

enum OrderSortKeys { CREATED_AT ID PROCESSED_AT UPDATED_AT }
enum CurrencyCode { %(currencies)s }
enum CountryCode { %(countries)s }
enum OrderDisplayFinancialStatus {
  AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED
}
enum OrderDisplayFulfillmentStatus {
  FULFILLED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED PENDING_FULFILLMENT RESTOCKED
  SCHEDULED UNFULFILLED REQUEST_DECLINED
}
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY OTHER STAFF }
enum WebhookSubscriptionTopic {
  ORDERS_CREATE ORDERS_UPDATED ORDERS_PAID ORDERS_CANCELLED ORDERS_DELETE ORDERS_EDITED
  ORDERS_FULFILLED ORDERS_PARTIALLY_FULFILLED REFUNDS_CREATE CUSTOMERS_UPDATE
  BULK_OPERATIONS_FINISH
}
enum WebhookSubscriptionFormat { JSON XML }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationType { QUERY MUTATION }
enum BulkOperationUserErrorCode { INVALID OPERATION_IN_PROGRESS LIMIT_REACHED }

interface Node { id: ID! }

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }

type MailingAddress {
  firstName: String lastName: String company: String address1: String address2: String
  city: String province: String provinceCode: String zip: String country: String
  countryCodeV2: CountryCode phone: String name: String
}

type CustomerEmailAddress { emailAddress: String }
type CustomerPhoneNumber { phoneNumber: String! }

type Customer implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  firstName: String
  lastName: String
  email: String @deprecated(reason: "Use `defaultEmailAddress.emailAddress` instead.")
  defaultEmailAddress: CustomerEmailAddress
  phone: String @deprecated(reason: "Use `defaultPhoneNumber.phoneNumber` instead.")
  defaultPhoneNumber: CustomerPhoneNumber
  displayName: String!
  defaultAddress: MailingAddress
}

type LineItem implements Node {
  id: ID!
  title: String!
  name: String!
  quantity: Int!
  sku: String
  variantTitle: String
  originalUnitPriceSet: MoneyBag!
}
type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { edges: [LineItemEdge!]! nodes: [LineItem!]! pageInfo: PageInfo! }

type Refund implements Node {
  id: ID!
  createdAt: DateTime
  note: String
  totalRefundedSet: MoneyBag!
}

type Order implements Node {
  id: ID!
  legacyResourceId: UnsignedInt64!
  name: String!
  email: String
  phone: String
  createdAt: DateTime!
  updatedAt: DateTime!
  processedAt: DateTime!
  cancelledAt: DateTime
  cancelReason: OrderCancelReason
  closed: Boolean!
  closedAt: DateTime
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  test: Boolean!
  currencyCode: CurrencyCode!
  presentmentCurrencyCode: CurrencyCode!
  totalPriceSet: MoneyBag!
  currentTotalPriceSet: MoneyBag!
  subtotalPriceSet: MoneyBag
  totalTaxSet: MoneyBag
  totalRefundedSet: MoneyBag!
  customer: Customer
  billingAddress: MailingAddress
  shippingAddress: MailingAddress
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false):
    LineItemConnection!
  refunds(first: Int): [Refund!]!
}
type OrderEdge { cursor: String! node: Order! }
type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }

type ShopPlan { displayName: String! partnerDevelopment: Boolean! shopifyPlus: Boolean! }
type Shop implements Node {
  id: ID!
  name: String!
  email: String!
  myshopifyDomain: String!
  ianaTimezone: String!
  currencyCode: CurrencyCode!
  plan: ShopPlan!
}

type AccessScope { handle: String! description: String! }
type AppInstallation implements Node { id: ID! accessScopes: [AccessScope!]! }

type WebhookHttpEndpoint { callbackUrl: URL! }
union WebhookSubscriptionEndpoint = WebhookHttpEndpoint
type WebhookSubscription implements Node {
  id: ID!
  topic: WebhookSubscriptionTopic!
  format: WebhookSubscriptionFormat!
  callbackUrl: URL!
  uri: String!
  endpoint: WebhookSubscriptionEndpoint!
  includeFields: [String!]!
  createdAt: DateTime!
  updatedAt: DateTime!
}
type WebhookSubscriptionEdge { cursor: String! node: WebhookSubscription! }
type WebhookSubscriptionConnection {
  edges: [WebhookSubscriptionEdge!]! nodes: [WebhookSubscription!]! pageInfo: PageInfo!
}
input WebhookSubscriptionInput {
  callbackUrl: URL
  uri: String
  format: WebhookSubscriptionFormat
  includeFields: [String!]
}
type UserError { field: [String!] message: String! }
type WebhookSubscriptionCreatePayload {
  webhookSubscription: WebhookSubscription
  userErrors: [UserError!]!
}
type WebhookSubscriptionDeletePayload { deletedWebhookSubscriptionId: ID userErrors: [UserError!]! }

type BulkOperation implements Node {
  id: ID!
  status: BulkOperationStatus!
  errorCode: BulkOperationErrorCode
  objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64!
  fileSize: UnsignedInt64
  url: URL
  partialDataUrl: URL
  createdAt: DateTime!
  completedAt: DateTime
  query: String!
  type: BulkOperationType!
}
type BulkOperationUserError { field: [String!] message: String! code: BulkOperationUserErrorCode }
type BulkOperationRunQueryPayload {
  bulkOperation: BulkOperation
  userErrors: [BulkOperationUserError!]!
}
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }

enum CountPrecision { AT_LEAST EXACT }
type Count { count: Int! precision: CountPrecision! }

type Query {
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
         sortKey: OrderSortKeys = ID, query: String, savedSearchId: ID): OrderConnection!
  ordersCount(query: String, savedSearchId: ID, limit: Int = 10000): Count
  order(id: ID!): Order
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  shop: Shop!
  currentAppInstallation: AppInstallation!
  webhookSubscriptions(first: Int, after: String, last: Int, before: String,
                       topics: [WebhookSubscriptionTopic!], callbackUrl: URL,
                       format: WebhookSubscriptionFormat): WebhookSubscriptionConnection!
  webhookSubscription(id: ID!): WebhookSubscription
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
  bulkOperation(id: ID!): BulkOperation
}

type Mutation {
  webhookSubscriptionCreate(topic: WebhookSubscriptionTopic!,
                            webhookSubscription: WebhookSubscriptionInput!):
    WebhookSubscriptionCreatePayload
  webhookSubscriptionDelete(id: ID!): WebhookSubscriptionDeletePayload
  bulkOperationRunQuery(query: String!, groupObjects: Boolean): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
}
"""


def build_admin_schema(extra_currencies: list[str] | None = None) -> GraphQLSchema:
    """Build the schema; ``extra_currencies`` adds shop currencies missing from the default list."""
    currencies = list(dict.fromkeys(CURRENCIES + [c.upper() for c in extra_currencies or []]))
    return build_schema(SDL % {"currencies": " ".join(currencies),
                               "countries": " ".join(COUNTRIES)})
