# frozen_string_literal: true

# The smallest Rails app that renders React components through ssrd with
# the hypernova gem: no database, no asset pipeline, no mailers or jobs;
# only the controller and view frameworks.
require "rails"
require "action_controller/railtie"
require "action_view/railtie"

module RailsApp
  class Application < Rails::Application
    config.load_defaults 6.1

    # Production-like whatever RAILS_ENV says: classes loaded once, up
    # front, and many requests at a time (no Rack::Lock).
    config.cache_classes = true
    config.eager_load = true
    config.consider_all_requests_local = false

    # A test app: the secret is not a secret. A real app reads it from
    # credentials or SECRET_KEY_BASE.
    config.secret_key_base = "ssrd-rails-app-test-secret-key-base-not-for-production-" * 2

    # Log to stderr (stdout is for the ready line); write nothing under the
    # app's directory.
    config.logger = ActiveSupport::Logger.new($stderr)
    config.log_level = :info
    config.cache_store = :null_store
    config.public_file_server.enabled = false

    # Where the page's client bundle is (served at /client.js).
    config.x.client_js = ENV.fetch("CLIENT_JS") { File.expand_path("../../../js-bundle/dist/client.js", __dir__) }
  end
end
