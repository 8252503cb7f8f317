//! The LifeTime Deployment API v2–compatible surface of the console
//! (`/lifetimeapi/rest/v2/…`). Field names, status values and codes follow
//! the public reference (OutSystems, "LifeTime API v2", base URL
//! `/lifetimeapi/rest/v2`), so LifeTime CI/CD tooling can drive Runway.
//! Dates are ISO 8601 UTC with milliseconds (`2014-12-31T23:59:59.938Z`).
//! Every error is the reference's `Exception` body: `{Errors, StatusCode}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Base path of the surface.
pub const LIFETIME_API_V2: &str = "/lifetimeapi/rest/v2";

/// The reference's error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Exception {
    pub errors: Vec<String>,
    pub status_code: u16,
}

/// `Environment`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    pub key: String,
    pub name: String,
    /// The Runway version of the environment.
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    /// Place in its pipeline (0 when in none).
    pub order: i64,
    pub host_name: String,
    #[serde(rename = "UseHTTPS")]
    pub use_https: bool,
    /// `Development`, `Test` or `Production` (by place in the pipeline).
    pub environment_type: String,
    pub number_of_front_ends: i64,
    pub application_server_type: String,
    pub application_server: String,
    pub database_provider: String,
    pub is_cloud_environment: bool,
}

/// `ModuleStatusInEnv`: a Runway app has one module, its component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ModuleStatusInEnv {
    pub application_key: String,
    pub environment_key: String,
    /// The console's version key of what runs (empty when not a console version).
    pub module_version_key: String,
    pub consistency_status: String,
    pub consistency_status_messages: String,
}

/// `AppStatusInEnv_v2`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AppStatusInEnv {
    pub environment_key: String,
    /// The version deployed (empty when the running bytes are not a console version).
    pub base_application_version_key: String,
    /// True when the environment runs bytes that are not a console version.
    pub is_modified: bool,
    pub is_modified_reason: String,
    pub is_modified_message: String,
    pub consistency_status: String,
    pub consistency_status_messages: String,
    pub mobile_apps_status: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub module_status_in_envs: Option<Vec<ModuleStatusInEnv>>,
    pub deployment_zone_key: String,
}

/// `Application`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Application {
    pub key: String,
    pub name: String,
    pub kind: String,
    pub team: String,
    pub description: String,
    #[serde(rename = "URLPath")]
    pub url_path: String,
    pub icon_hash: String,
    #[serde(rename = "IconURL")]
    pub icon_url: String,
    pub is_system: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub app_status_in_envs: Option<Vec<AppStatusInEnv>>,
}

/// `DeploymentTechnology_v2`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentTechnology {
    pub key: String,
    pub name: String,
}

/// `DeploymentZone_v2`: one default zone per environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentZone {
    pub key: String,
    pub name: String,
    pub is_default: bool,
    pub deployment_technology: DeploymentTechnology,
}

/// `ApplicationVersion_v2`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationVersion {
    pub key: String,
    pub application_key: String,
    pub version: String,
    pub change_log: String,
    pub created_on: String,
    /// Runs in an environment or is used by a plan.
    pub in_use: bool,
    pub mobile_versions: Vec<serde_json::Value>,
    pub module_versions: Vec<serde_json::Value>,
}

/// `ApplicationVersionCreate`: tag the version an environment runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationVersionCreate {
    #[serde(default)]
    pub change_log: String,
    /// Must be the version number the environment runs (Runway versions are
    /// the packages' semver; tagging never renames bytes).
    pub version: Option<String>,
    #[serde(default)]
    pub mobile_versions: Vec<serde_json::Value>,
}

/// `TextRecord`: the key of a new application version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationVersionCreated {
    pub application_version_key: String,
}

/// `ApplicationOperation_v2`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationOperation {
    pub application_key: String,
    pub application_version_key: String,
    /// `Deploy 1.5.0`, `Undeploy`.
    pub deployment_operation: String,
    pub deployment_zone_key: String,
}

/// An operation of `POST /deployments/` (`TextTextRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationOperationCreate {
    pub application_version_key: String,
    #[serde(default)]
    pub deployment_zone_key: Option<String>,
}

/// `POST /deployments/` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentCreate {
    pub application_operations: Vec<ApplicationOperationCreate>,
    #[serde(default)]
    pub notes: String,
    pub source_environment_key: String,
    pub target_environment_key: String,
}

/// `Deployment_v2`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct Deployment {
    pub key: String,
    pub source_environment_key: String,
    pub target_environment_key: String,
    pub notes: String,
    pub created_on: String,
    pub created_by: String,
    pub created_by_username: String,
    pub saved_on: String,
    pub saved_by: String,
    pub saved_by_username: String,
    pub started_on: Option<String>,
    pub started_by: Option<String>,
    pub started_by_username: Option<String>,
    pub aborted_on: Option<String>,
    pub aborted_by: Option<String>,
    pub aborted_by_username: Option<String>,
    pub application_operations: Vec<ApplicationOperation>,
}

/// `ApplicationConflict`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationConflict {
    pub message: String,
    /// The operation the conflict is about.
    pub producer_application_operation: Option<ApplicationOperation>,
    pub consumer_application_operation: Option<ApplicationOperation>,
}

/// `GET /deployments/{DeploymentKey}/`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentDetail {
    pub deployment: Deployment,
    pub applications_to_redeploy: Vec<String>,
    pub application_conflicts: Vec<ApplicationConflict>,
}

/// `DeploymentMessage`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentMessage {
    pub instant: String,
    pub message: String,
}

/// `GET /deployments/{DeploymentKey}/status/`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentStatus {
    /// `saved`, `running`, `needs_user_intervention`, `finished_successful`,
    /// `finished_with_warnings`, `finished_with_errors`, `aborted`, `aborting`.
    pub deployment_status: String,
    pub info: String,
    pub deployment_log: Vec<DeploymentMessage>,
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_instant(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.fff]` with an optional
/// `Z` (UTC), into milliseconds since the epoch.
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(time) = time {
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let mut t = hms.split(':');
        let h: i64 = t.next()?.parse().ok()?;
        let mi: i64 = t.next()?.parse().ok()?;
        let sec: i64 = t.next().unwrap_or("0").parse().ok()?;
        if t.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        ms += (h * 3600 + mi * 60 + sec) * 1000;
        if let Some(frac) = frac {
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            ms += digits.parse::<i64>().ok()?;
        }
    }
    Some(ms)
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip() {
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_instant(1_420_070_399_938),
            "2014-12-31T23:59:59.938Z"
        );
        assert_eq!(
            parse_instant("2014-12-31T23:59:59.938Z"),
            Some(1_420_070_399_938)
        );
        assert_eq!(parse_instant("2014-12-31"), Some(1_419_984_000_000));
        for bad in ["", "2014-13-01", "yesterday", "2014-12-31T25:00:00"] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
        for ms in [1, 951_782_400_000, 1_798_761_600_123] {
            assert_eq!(parse_instant(&format_instant(ms)), Some(ms));
        }
    }
}
