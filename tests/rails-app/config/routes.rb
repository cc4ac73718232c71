# frozen_string_literal: true

Rails.application.routes.draw do
  root "pages#show"
  get "/client.js", to: "client_bundles#show"
end
