//! The console API's OpenAPI document, served at
//! `/_runway/console/v1/openapi.json` (any authenticated caller).
//! Every `/_runway/console/v1` route is in it (a test compares the routes
//! the console's modules declare with the document's paths). The LifeTime
//! v2 surface follows LifeTime's own published reference and is not
//! repeated here.

use axum::Json;
use utoipa::OpenApi;

use crate::auth::Caller;

#[derive(OpenApi)]
#[openapi(
    info(title = "Runway infrastructure console API", version = "1"),
    paths(
        crate::accounts::console_info,
        crate::accounts::list_accounts,
        crate::accounts::create_account,
        crate::accounts::create_account_token,
        crate::accounts::revoke_account_token,
        crate::accounts::disable_account,
        crate::accounts::rotate_account_tokens,
        crate::accounts::set_account_role,
        crate::environments::add_environment,
        crate::environments::list_environments,
        crate::environments::show_environment,
        crate::environments::remove_environment,
        crate::environments::set_pipeline,
        crate::environments::create_pipeline,
        crate::environments::list_pipelines,
        crate::environments::show_pipeline,
        crate::apps::list_apps,
        crate::apps::show_app,
        crate::apps::list_versions,
        crate::apps::show_version,
        crate::apps::tag_version,
        crate::plans::list_plans,
        crate::plans::create_plan_route,
        crate::plans::show_plan,
        crate::plans::delete_plan_route,
        crate::plans::validate_route,
        crate::plans::start_route,
        crate::plans::continue_route,
        crate::plans::abort_route,
        crate::plans::status_route,
    ),
    components(schemas(runway_api::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ConsoleDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ConsoleDoc::openapi();
    doc.merge(crate::users::UsersDoc::openapi());
    doc.merge(crate::roles::RolesDoc::openapi());
    doc.merge(crate::audit::AuditDoc::openapi());
    doc.merge(crate::trust::TrustDoc::openapi());
    doc
}

pub(crate) async fn serve(_caller: Caller) -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
