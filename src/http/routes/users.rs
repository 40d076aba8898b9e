//! `/api/users`: account management for admins — list, add, change role
//! or reset a password, remove (handing what the user owned to another).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::Role;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiQuery, Caller, IdPath};
use crate::http::wire::{
    ok, ok_with, AccountDto, CreateUserRequest, DeleteUserQuery, UpdateUserRequest, UserDeletedDto,
};
use crate::service::{Accounts, NewUser};

pub async fn list(
    State(accounts): State<Accounts>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<crate::http::wire::PageQuery>,
) -> ApiResult<Response> {
    let page = q
        .request()
        .map_err(crate::http::error::ApiError::bad_request)?;
    let users = accounts.accounts_page(&page).await?;
    Ok(crate::http::wire::ok_page(users, |(u, h)| {
        AccountDto::new(&u, h)
    }))
}

pub async fn create(
    State(accounts): State<Accounts>,
    _caller: Caller,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<Response> {
    let (user, holdings) = accounts
        .add_account(NewUser {
            email: req.email,
            password: req.password,
            role: req.role.unwrap_or(Role::Member),
        })
        .await?;
    Ok((StatusCode::CREATED, ok(AccountDto::new(&user, holdings))).into_response())
}

pub async fn get(
    State(accounts): State<Accounts>,
    _caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    let (user, holdings) = accounts.account(id).await?;
    Ok(ok(AccountDto::new(&user, holdings)))
}

pub async fn update(
    State(accounts): State<Accounts>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Response> {
    let (user, holdings, done) = accounts
        .update_account(&caller.user, caller.token_id, id, req.role, req.password)
        .await?;
    let dto = AccountDto::new(&user, holdings);
    Ok(if done.is_empty() {
        ok(dto)
    } else {
        ok_with(dto, done.join("; "))
    })
}

pub async fn delete(
    State(accounts): State<Accounts>,
    caller: Caller,
    IdPath(id): IdPath,
    ApiQuery(q): ApiQuery<DeleteUserQuery>,
) -> ApiResult<Response> {
    let (user, heir) = accounts
        .remove_account(&caller.user, id, q.transfer_to)
        .await?;
    let message = match &heir {
        Some(h) => format!(
            "{} removed; what they owned now belongs to {}",
            user.email, h.email
        ),
        None => format!("{} removed", user.email),
    };
    Ok(ok_with(
        UserDeletedDto {
            id,
            transferred_to: heir.map(|h| h.id),
        },
        message,
    ))
}
